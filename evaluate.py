"""Score a trained model or classify an audio file.

    python evaluate.py ckpt_path=outputs/runs/.../checkpoints/best-07.ckpt [split=test]
    python evaluate.py run_id=<mlflow run id> audio=path/to/song.mp3

The same command is installed as ``genre-evaluate`` (:func:`genre.cli.evaluate_command`); the work is done
by :func:`genre.evaluate.evaluate`.
"""
from genre.cli import evaluate_command

if __name__ == "__main__":
    evaluate_command()
