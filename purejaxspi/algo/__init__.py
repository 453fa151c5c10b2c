"""The algorithm, pure JAX and free of I/O: configuration, objectives, networks and layers, and the
training program (`make_train`) whose per-run functions any mapping over runs can batch."""
