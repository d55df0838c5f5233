"""Every figure cmcat writes, drawn from plain data (arrays, DataFrames, dicts) as PNG files.

Compute modules return data; these modules only draw it, through one matplotlib helper
(`figure.py`: the Agg backend, folder creation, layout, saving and freeing).
"""
