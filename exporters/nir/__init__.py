"""NIR both ways: :mod:`.export` writes the graph as a NIR graph, :mod:`.importer` reads a NIR file
back into a graph (the format's reader lives with its writer, so the two cannot drift apart)."""
