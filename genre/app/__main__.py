"""``python -m genre.app run_id=...``: the app (:func:`genre.cli.app_command`, also installed as ``genre-app``)."""
from genre.cli import app_command

if __name__ == "__main__":
    app_command()
