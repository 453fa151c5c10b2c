"""Scale-out: the grid of runs (seeds x hyperparameter settings), how one program maps over it, its
sharding over devices, and processes joined by jax.distributed."""
