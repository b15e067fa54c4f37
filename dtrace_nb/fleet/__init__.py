"""Fleet tracing: one D program run on many Dask workers, aggregations merged exactly."""
