"""What quantization changed: counts and worst cases, per kind of rounding."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class QuantizationReport:
    weight_bits: int
    weights_total: int = 0
    weights_clipped: int = 0
    worst_weight_error: tuple = (0.0, "")  # (largest |w_q - w| in float units, layer)
    biases_clipped: int = 0
    worst_bias_error: tuple = (0.0, "")  # (membrane units, layer)
    thresholds: list = field(default_factory=list)  # (population, float, represented)
    # rho rounded to a multiple of 2^-12 (the rule retention_fits_12_bits): (|error|, population)
    worst_retention_error: tuple = (0.0, "")

    def add_weights(self, where, clipped, total, err):
        self.weights_total += total
        self.weights_clipped += clipped
        if err > self.worst_weight_error[0]:
            self.worst_weight_error = (err, where)

    def add_bias(self, where, clipped, err):
        self.biases_clipped += clipped
        if err > self.worst_bias_error[0]:
            self.worst_bias_error = (err, where)

    def add_retention(self, pop, wanted, got):
        if abs(got - wanted) > self.worst_retention_error[0]:
            self.worst_retention_error = (abs(got - wanted), pop)

    def add_threshold(self, pop, wanted, got):
        self.thresholds.append((pop, wanted, got))

    @property
    def worst_threshold_error(self) -> tuple:
        """(largest relative threshold rounding error, population)."""
        worst = (0.0, "")
        for pop, wanted, got in self.thresholds:
            rel = abs(got - wanted) / abs(wanted) if wanted else float("inf")
            worst = max(worst, (rel, pop))
        return worst

    def to_dict(self) -> dict:
        return {"weight_bits": self.weight_bits, "weights_total": self.weights_total,
                "weights_clipped": self.weights_clipped,
                "worst_weight_error": {"value": self.worst_weight_error[0],
                                       "layer": self.worst_weight_error[1]},
                "biases_clipped": self.biases_clipped,
                "worst_bias_error": {"membrane_units": self.worst_bias_error[0],
                                     "layer": self.worst_bias_error[1]},
                "worst_threshold_error": {"relative": self.worst_threshold_error[0],
                                          "population": self.worst_threshold_error[1]},
                "worst_retention_error": {"value": self.worst_retention_error[0],
                                          "population": self.worst_retention_error[1]}}
