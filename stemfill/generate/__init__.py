"""Generation: what the user asks of the new part, and how the network's per-cell probabilities become a
part a player would play. ``stemfill/pianoroll/`` is the model (roll codec, grid, network, diffusion
process, training, export, the fast engine, the fill pipeline); this package is everything around it that
decides what gets played.

What the room holds:

* ``controls.py``  per-bar attributes measured from rolls (density, syncopation, register, polyphony, toms,
                   fills, groove), the CLI/API words for them (``parse_controls``, ``resolve_controls``,
                   ``--like`` references) and the control planes the network reads (``control_planes``;
                   ``ControlConfig``, saved with a model, maps them to the training data's percentiles);
* ``styles.py``    style words ("reggae drums") as written-out reference grooves for ``--like``;
* ``sections.py``  where the song's sections change, from its known parts (``--fills sections``, the plan);
* ``steer.py``     steering at sampling time: the last prediction nudged until the part it decodes to meets
                   the requested attributes (called by ``pianoroll/diffusion.py``, ``control_steer``);
* ``plan.py``      the song's bars in its own meter, its phrases and sections, where fills and crashes go;
* ``library.py``   pattern libraries of real drum bars and phrases (``stemfill library build``);
* ``drums.py``     the pattern decoder: one whole bar pattern per bar, chosen by Viterbi;
* ``decoder.py``   the decoding stage ``pianoroll/fill.py`` calls: which decoder a model's drums get;
* ``critic.py``    the realism critics that choose among drawn phrases and bars (logistic, trained on the train
                   split's fakes);
* ``units.py``     the bass and guitar by bars: each 4/4 bar the decoder's or a real player's, transposed, chosen
                   by fit and the critic;
* ``articulation.py`` how long the new bass's and guitar's notes are held: one articulation per window, moved to
                   the spread of players' (quantile tables measured on the train split);
* ``rests.py``     where a new part rests in a whole song (small per-stem models over the song's other parts);
* ``groove.py``    the bass (and, where a model turns it on, the guitar) keeps its groove in a whole song: each
                   bar's rhythm chosen by Viterbi among the rhythms the part plays elsewhere in the song, the
                   bars that changed played again on it.

The flow (the steps in brackets run only when asked or for a model that has them)::

    request (--density/--fills/--like/--style)
         -> controls.py  [styles.py]  the requested attributes per stem; [sections.py] fill bars
         -> control planes
    song -> roll -> network + diffusion (pianoroll/) [steer.py] -> P(note) per cell, whole song
         -> decoder.py   the stem's decoder; drums by patterns:
         -> plan.py      bars in the song's own meter, phrases and section starts (sections.py),
                         where fills and crashes go
         -> drums.py     one whole bar pattern per bar from a library (library.py), chosen by Viterbi:
                         the network's likelihood of each candidate bar, a density match, how common the
                         pattern is, and a cost for changing the groove (cheap at phrase and section starts);
                         fills from real fills at the planned bars, a crash on the downbeat after them;
                      the bass and guitar: units.py plays bars of real players where they fit, articulation.py
                      holds each window's notes as one articulation; in whole songs groove.py keeps the bass's
                      rhythm from bar to bar, rests.py clears the bars a bassist would rest in
         -> notes

``pianoroll/`` reaches in here for ``controls.ControlConfig`` (model.py, fast.py, train.py), for
``steer.steer`` (inside ``BinaryDiffusion.steer``) and, from fill.py, for the decoder, the plan,
``control_planes`` and ``sections.fill_bars``. No module here imports the network, the diffusion process
or fill.py at module level (library.py asks ``pianoroll.model`` for the default model's folder inside a
function), so either package imports first without a cycle.

``library.py`` builds and reads pattern libraries; the shipped one is
``stemfill/models/default/drum-patterns.npz`` (its sources and licences are in docs/model-card.md).
"""
