"""The face_recognition library doing facelens's job with its defaults (runs in .bench-venv).

Reads a JSON job on stdin: {"people": DIR, "images": [paths], "repeats": N}; writes JSON: the
enrolment time, and per image the median seconds of (load, locate, encode, compare) and the
names found. Names: the closest enrolled person within its default tolerance 0.6, as the
library's own examples do.
"""

import json
import os
import statistics
import sys
import time

import face_recognition
import numpy as np


def pairs_job(job):
    """Accuracy on a pairs file: each image's largest face, distance <= 0.6 means same."""
    vectors = {}
    for name in job["images"]:
        image = face_recognition.load_image_file(os.path.join(job["root"], name))
        boxes = face_recognition.face_locations(image)
        if not boxes:
            vectors[name] = None
            continue
        largest = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
        vectors[name] = face_recognition.face_encodings(image, [largest])[0]
    scored = []
    for first, second, same in job["pairs"]:
        if vectors[first] is not None and vectors[second] is not None:
            scored.append((float(np.linalg.norm(vectors[first] - vectors[second])), same))
    right = sum((d <= 0.6) == same for d, same in scored)
    json.dump(
        {"scored_pairs": len(scored), "accuracy": right / len(scored), "distances": scored},
        sys.stdout,
    )


def main():
    job = json.load(sys.stdin)
    if "pairs" in job:
        pairs_job(job)
        return
    start = time.perf_counter()
    names, known = [], []
    for person in sorted(os.listdir(job["people"])):
        folder = os.path.join(job["people"], person)
        for file in sorted(os.listdir(folder)):
            image = face_recognition.load_image_file(os.path.join(folder, file))
            encodings = face_recognition.face_encodings(image)
            if len(encodings) == 1:
                names.append(person)
                known.append(encodings[0])
    enrol_s = time.perf_counter() - start
    results = {}
    for path in job["images"]:
        runs, found = [], []
        for _ in range(job["repeats"]):
            t0 = time.perf_counter()
            image = face_recognition.load_image_file(path)
            t1 = time.perf_counter()
            boxes = face_recognition.face_locations(image)  # hog, upsample once: its defaults
            t2 = time.perf_counter()
            encodings = face_recognition.face_encodings(image, boxes)
            t3 = time.perf_counter()
            found = []
            for encoding in encodings:
                distances = face_recognition.face_distance(known, encoding)
                best = int(np.argmin(distances))
                found.append(names[best] if distances[best] <= 0.6 else "unknown")
            t4 = time.perf_counter()
            runs.append((t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0))
        stages = ["decode", "detect", "embed", "match", "total"]
        results[path] = {
            "ms": {
                s: round(statistics.median(r[i] for r in runs) * 1000, 2)
                for i, s in enumerate(stages)
            },
            "names": sorted(found),
        }
    json.dump({"enrol_s": round(enrol_s, 3), "enrolled": len(known), "images": results}, sys.stdout)


if __name__ == "__main__":
    main()
