"""The README `export_lava` writes beside the graph (its Python files are copies of package
modules, see :data:`mlf_deploy.exporters.lava.export.SHIPPED`)."""

README = """# MLF network for Lava

- `graph.mlfg`: the int deployment graph (a header line, a SHA-256 line, then a zip of `graph.json`
  and one `.npy` per array).
- `run_lava_network.py`: rebuilds the Lava processes from it and runs them (numpy + lava-nc 0.10
  only, with the modules beside it: `portable.py` reads the graph, prepares the input and reads out;
  `lava_build.py` builds the processes from `lava_delay.py`, `lava_graded.py`, `lava_import.py`):
  `python run_lava_network.py --input x.npy --out result.npz`; it prints its progress to stderr
  (building the processes takes seconds, compiling and running them minutes) and then the
  predicted classes. `result.npz` gets `logits` and the readout populations' spikes per model step.
  `mlf-deploy run THIS_FOLDER --input x.npy` does the same from the package.
- `input.json`: the input pipeline, also stored in the graph's metadata (`input_pipeline`).

## Input

`x.npy` holds **raw samples as the data set stores them** (`raw_layout`, `raw_units` in
`input.json`; for digits: `(B, 1, 8, 8)` pixel values 0..16; event sets: `(B, T, C, H, W)` event
counts). The loader then applies, in order:

1. `x = (x / divide - mean) / std` per channel (`normalise`; absent for event counts);
2. static images are repeated over the `timesteps`; event frames go to `(T, B, C, H, W)`;
3. `x * input_gain + input_offset` per channel when these are present (a folded normalisation);
4. in this integer graph: `clip(round(x / input_scale), -(2^(b-1) - 1), 2^(b-1) - 1)` with
   `b = input_value_bits` ("model units" below are the values after step 1 and 2).

With `--model-units`, `x.npy` holds values after steps 1-2 (`(B, C, H, W)` images or
`(T, B, C, H, W)` frames). Class names are `class_names` in `input.json`.

Mapping: one `LIFReset` per population (fixed_pt: du=4095, dv=4096-round(rho*4096), vth mantissa,
bias_mant/bias_exp), one `Conv` per projection (kernel flipped, (W, H, C) layout, weight_exp folded
in), fan-in summed at each LIF's `a_in`. Each connection adds one step, so skip paths are delayed by
a ring-buffer `SpikeDelay` process (`lava_delay.py`) and layer `l` at depth `d` shows model
step `t` at Lava step `t + d`.
Input projections with a negative weight exponent are computed host-side and fed by a RingBuffer.
A graded graph (`--spikes graded`) has one `GradedMLF` per layer instead (K membranes, sending the
level count as a graded spike into `Conv`s with `num_message_bits` > 0); `result.npz` then holds
the readout sources' payloads.

Trust: `run_lava_network.py` is Python and puts this folder first on its import path (also under
`python -I`), so it trusts everything in this folder. Run it only from a folder you wrote or
checked; a file named like a module (`numpy.py`, `lava/`) placed here would run. The graph's
SHA-256 detects accidental changes, not deliberate ones. `.mlf-deploy-output.json` lists the files
of this export: `mlf-deploy export --force` replaces the folder only while it holds nothing else.
"""
