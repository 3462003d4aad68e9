"""The recognition and recommendation app: ``genre-app run_id=...`` (or ``python -m genre.app``) serves a page
on 127.0.0.1 where a person gives a song and sees its genres, its windows over time, what the model hears and
the tracks of the run's corpus most like it (:mod:`genre.app.server`, over :mod:`genre.app.service`)."""
