"""purejaxspi: Deep SPI, PPO and DeepMDP as one jitted, vmapped JAX training program."""

__version__ = "0.1.0"
