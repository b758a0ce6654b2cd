"""Generation: how the network's per-cell probabilities become a part a player would play.

The flow for a stem decoded by patterns (today: drums)::

    song -> roll -> network (pianoroll/) -> P(note) per cell, whole song
         -> plan.py      bars in the song's own meter, phrases and section starts, where fills and crashes go
         -> drums.py     one whole bar pattern per bar from a library (library.py), chosen by Viterbi:
                         the network's likelihood of each candidate bar, a density match, how common the
                         pattern is, and a cost for changing the groove (cheap at phrase and section starts);
                         fills from real fills at the planned bars, a crash on the downbeat after them
         -> notes

``library.py`` builds and reads pattern libraries (``stemfill library build``); the shipped one is
``stemfill/models/default/drum-patterns.npz`` (its sources and licences are in docs/model-card.md).
"""
