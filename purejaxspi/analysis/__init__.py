"""Reading runs back: learning-curve plots, bootstrap statistics and the throughput bench."""
