"""Dask orchestration over HEALPix tiles: the generic runner and the predict / fetch tile tasks."""
