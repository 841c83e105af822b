"""Task distributions and datasets: the sine toy here, Omniglot and Mini-ImageNet beside it."""
