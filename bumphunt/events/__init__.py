"""Events: the ntuple schema, reading and writing ROOT files, the detector model, pre-selection and diphoton candidates.

The first stage of the chain: ``read_events`` / ``iterate_events`` turn ROOT
files (bumphunt's own or basf2-like ones through an alias map) into columnar
events, ``preselect`` keeps e+e- -> 3 photon candidates with a cut flow, and
``diphoton_candidates`` forms the three photon pairs of each event.
"""
