"""The CPU-scale study of the paper's experimental section on Fashion-MNIST
(``experiments/cpu_study``): protocol, worker pool, experiments, analyses and report."""
