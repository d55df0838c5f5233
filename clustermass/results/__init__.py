"""Reading results back: read-only SQL, export (Parquet/HATS/FITS/CSV) and the database status."""
