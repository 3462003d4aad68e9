"""Train a genre classifier: ``python train.py dataset=gtzan features=mel model=cnn3``.

Hydra composes conf/; see README.md. The same command is installed as ``genre-train``
(:func:`genre.cli.train_command`); the work is done by :func:`genre.train.train`.
"""
from genre.cli import train_command

if __name__ == "__main__":
    train_command()
