"""HTML and PNG reports for researchers (calibration, simulation).

matplotlib is imported inside the functions that draw, never at import time, so that the
engine itself depends on numpy, scipy and girth only.
"""
