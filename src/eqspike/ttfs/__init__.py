"""Time-to-first-spike learning with exact gradients ("Fast and deep", Göltz et al. 2021).

``spike_times``: closed-form first-spike times of current-based LIF neurons and their exact
gradients (a custom autograd Function); ``integrator``: the time-stepped alternative used for
distortions the closed forms cannot express; ``distortions``: hardware non-idealities;
``network``: the layered network the trainer runs; ``recipe``: its config and builder.
"""
