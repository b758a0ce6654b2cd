"""The song model and its file formats: ``song`` (Song, Track, Note, tempo and meter), ``stems``
(which stem a track is), readers and writers (``io.read_song`` / ``io.write_song`` dispatch to
``midi``, ``guitarpro`` for gp3-5, ``gpif`` + ``gpx`` for GP6-8), tab fingering (``fretting``,
``rhythm``), ``bars`` (the --bars syntax) and ``info`` (the `stemfill info` table)."""
