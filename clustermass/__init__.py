"""cmcat: galaxy-cluster masses from SDSS images."""
__version__ = "0.1.0"
