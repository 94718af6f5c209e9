"""Run in the MediaPipe venv: MediaPipe Tasks' ImageClassifier on model files and pictures, answers as JSON.

stdin: {"jobs": [{"model": PATH, "pictures": [PATH, ...]}]}; stdout: one result a job, either
{"ok": true, "index": [...], "label": [...], "score": [...]} (the top category of each picture) or
{"ok": false, "error": "..."} when MediaPipe refuses the model or a picture. Nothing of edgeship is
imported here: this is what an app developer's MediaPipe does with the file.
"""

import json
import sys

import mediapipe as mp
from mediapipe.tasks import python as tasks
from mediapipe.tasks.python import vision


def classify(model: str, pictures: list) -> dict:
    try:
        options = vision.ImageClassifierOptions(base_options=tasks.BaseOptions(model_asset_path=model), max_results=1)
        with vision.ImageClassifier.create_from_options(options) as classifier:
            top = [classifier.classify(mp.Image.create_from_file(path)).classifications[0].categories[0] for path in pictures]
    except Exception as exc:  # what MediaPipe says is the finding; the test judges it
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {
        "ok": True,
        "index": [category.index for category in top],
        "label": [category.category_name for category in top],
        "score": [category.score for category in top],
    }


def main() -> None:
    jobs = json.load(sys.stdin)["jobs"]
    json.dump({"mediapipe": mp.__version__, "results": [classify(job["model"], job["pictures"]) for job in jobs]}, sys.stdout)


if __name__ == "__main__":
    main()
