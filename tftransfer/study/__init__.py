"""The CPU-scale study of the paper's experimental section on Fashion-MNIST
(``tools/cpu_study.py``): protocol, worker pool, experiments, analyses and report."""
