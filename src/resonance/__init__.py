"""resonance: song recognition that keeps working in live concerts.

Importing the package is cheap: no torch, mlflow, prefect, great_expectations or evidently at import time.
"""

__version__ = "0.1.0"
