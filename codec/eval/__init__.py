"""The benchmark: classical codecs run through PyAV on the same frames, Bjøntegaard deltas,
and the reports and plots (matplotlib, from the ``plot`` extra). Only ``bench`` imports it."""
