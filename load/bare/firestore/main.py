"""The honest floor for `load/firstreq.py`: the smallest functions-framework function that
reads one Firestore document with the official client, made at import as Google's samples do.
What it costs from process start to its first 200 is what any function reading Firestore
pays before it can answer."""

import functions_framework
from google.cloud import firestore

db = firestore.Client()


@functions_framework.http
def read(request: object) -> dict[str, bool]:
    snapshot = db.collection("bench").document("floor").get()
    return {"exists": snapshot.exists}
