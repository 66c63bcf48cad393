"""Evaluating predicted probabilities: calibration error, proper scores, temperature scaling.

>>> import crossent.calibration as cal
>>> probs = [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]]
>>> print(round(float(cal.brier_score(probs, [0, 1, 1, 1])), 4))
0.25
"""

from ._calibration import *  # noqa: F403 -- the public names, listed once in its __all__
from ._calibration import __all__ as __all__
