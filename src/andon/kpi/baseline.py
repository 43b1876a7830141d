"""An ISO 50001-style energy baseline: a linear regression of energy on production (and
heating/cooling degree-days where given), and the savings of a reporting period against it.

``fit_baseline`` fits ``energy = intercept + per_unit × production [+ per_degree_day × dd]``
by least squares over baseline periods (days or weeks); ``savings`` is the predicted energy
of the reporting periods minus their actual energy (positive = saved), the "avoided energy
consumption" of ISO 50015 / IPMVP option C.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Baseline", "fit_baseline"]


@dataclass(frozen=True, slots=True)
class Baseline:
    """A fitted baseline model."""

    intercept: float
    per_unit: float
    per_degree_day: float | None
    r2: float
    n: int

    def predict(
        self, production: npt.ArrayLike, degree_days: npt.ArrayLike | None = None
    ) -> npt.NDArray[np.float64]:
        """Expected energy of periods with this production (and degree-days)."""
        p = np.asarray(production, dtype=np.float64)
        e = self.intercept + self.per_unit * p
        if self.per_degree_day is not None:
            if degree_days is None:
                raise ValueError("this baseline needs degree-days")
            e = e + self.per_degree_day * np.asarray(degree_days, dtype=np.float64)
        return np.asarray(e, dtype=np.float64)

    def savings(
        self,
        energy: npt.ArrayLike,
        production: npt.ArrayLike,
        degree_days: npt.ArrayLike | None = None,
    ) -> float:
        """Predicted minus actual energy over the reporting periods (positive = saved)."""
        actual = np.asarray(energy, dtype=np.float64)
        return float(np.sum(self.predict(production, degree_days)) - np.sum(actual))


def fit_baseline(
    energy: npt.ArrayLike,
    production: npt.ArrayLike,
    degree_days: npt.ArrayLike | None = None,
) -> Baseline:
    """Least-squares baseline over periods.

    >>> b = fit_baseline([110.0, 130.0, 150.0], [10, 20, 30])
    >>> round(b.intercept, 6), round(b.per_unit, 6), round(b.r2, 6)
    (90.0, 2.0, 1.0)
    >>> b.savings([170.0], [30])
    -20.0
    """
    e = np.asarray(energy, dtype=np.float64)
    p = np.asarray(production, dtype=np.float64)
    cols = [np.ones_like(p), p]
    if degree_days is not None:
        cols.append(np.asarray(degree_days, dtype=np.float64))
    x = np.column_stack(cols)
    if len(e) != len(p) or len(e) < x.shape[1] + 1:
        raise ValueError(f"need at least {x.shape[1] + 1} periods with energy and production")
    coef, *_ = np.linalg.lstsq(x, e, rcond=None)
    resid = e - x @ coef
    ss_tot = float(np.sum((e - e.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else 1.0
    return Baseline(
        float(coef[0]),
        float(coef[1]),
        float(coef[2]) if degree_days is not None else None,
        r2,
        len(e),
    )
