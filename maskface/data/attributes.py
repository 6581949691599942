"""Per-face attribute vocabularies shared by converters, datasets, models and writers.

A face's ``attributes`` dict holds any of ``age`` (float years in [0, 120]), ``gender`` (one of
:data:`GENDERS`) and ``emotion`` (one of :data:`EMOTIONS`); a missing key means unknown.
``emotion_votes`` optionally holds annotators' votes (FER+: ten crowd workers per face) as
``{name: count}`` over :data:`EMOTIONS` and :data:`EXTRA_VOTES`; training can use their
distribution as a soft emotion target (:func:`emotion_vote_distribution`).
Teacher labels (``convert_annotations.py teacher-labels``, a training-time extra): ``gender_soft``
is another model's probability that the face is female, in [0, 1], and ``age_teacher`` its age
estimate in years; training can mix ``gender_soft`` with the true gender (``LOSS.GENDER_TEACHER``).
The ``normalize_*`` helpers map the spellings found in public datasets and annotation tools onto
these names and return ``None`` for anything they do not recognise (the caller reports it).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
GENDERS = ("female", "male")
AGE_RANGE = (0.0, 120.0)  # years, inclusive
#: Vote names besides EMOTIONS that FER+ annotators could give (not predicted by MaskFace).
EXTRA_VOTES = ("contempt", "unknown", "not_face")
VOTE_NAMES = EMOTIONS + EXTRA_VOTES

_EMOTION_SYNONYMS = {
    "anger": "angry",
    "angry": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
}

_GENDER_SYNONYMS = {
    "female": "female",
    "f": "female",
    "woman": "female",
    "girl": "female",
    "male": "male",
    "m": "male",
    "man": "male",
    "boy": "male",
}


def normalize_emotion(name: object) -> Optional[str]:
    """Map an emotion spelling ("Happiness", "surprised", "ANGER") to a name in :data:`EMOTIONS`.

    Returns ``None`` when ``name`` is not a string or not a known spelling.
    """
    if not isinstance(name, str):
        return None
    return _EMOTION_SYNONYMS.get(name.strip().lower())


def normalize_gender(value: object) -> Optional[str]:
    """Map a gender spelling ("F", "Woman", "male") to a name in :data:`GENDERS`.

    Numeric codes are dataset-specific (UTKFace: 0 male, 1 female) and are NOT accepted here;
    the dataset's converter decodes them. Returns ``None`` for anything unknown.
    """
    if not isinstance(value, str):
        return None
    return _GENDER_SYNONYMS.get(value.strip().lower())


def normalize_age(value: object) -> Optional[float]:
    """Parse an age in years (number or numeric string) within :data:`AGE_RANGE`.

    Returns the age as float, or ``None`` when ``value`` is not a finite number in range.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or value != value:  # NaN
        return None
    value = float(value)
    return value if AGE_RANGE[0] <= value <= AGE_RANGE[1] else None

#: Adience age groups as (first, last) years, inclusive, youngest first; reported as "first-last".
#: Ages in the gaps between groups go to the nearest group, a tie (3, 7, 35 years) to the younger.
ADIENCE_GROUPS = ((0, 2), (4, 6), (8, 12), (15, 20), (25, 32), (38, 43), (48, 53), (60, 100))


def check_emotion_votes(votes: object) -> Optional[str]:
    """``None`` when ``votes`` is a valid ``emotion_votes`` dict (names in :data:`VOTE_NAMES`,
    counts >= 0), else what is wrong with it."""
    if not isinstance(votes, dict):
        return f"emotion_votes must be an object {{name: count}}, got {type(votes).__name__}"
    unknown = sorted(set(votes) - set(VOTE_NAMES))
    if unknown:
        return f"emotion_votes has unknown name(s) {unknown}; expected names among {VOTE_NAMES}"
    for name, count in votes.items():
        if isinstance(count, bool) or not isinstance(count, (int, float)) or not count >= 0:
            return f"emotion_votes[{name!r}] must be a count >= 0, got {count!r}"
    return None


def emotion_vote_distribution(votes: Optional[dict], emotions: Sequence[str] = EMOTIONS) -> Optional[Dict[str, float]]:
    """The share of the votes each emotion got, over ``emotions`` only (votes for contempt,
    unknown or not-a-face are left out), or ``None`` when no vote went to one of them.

    >>> emotion_vote_distribution({"happy": 6, "neutral": 2, "contempt": 2})
    {'angry': 0.0, 'disgust': 0.0, 'fear': 0.0, 'happy': 0.75, 'neutral': 0.25, 'sad': 0.0, 'surprise': 0.0}
    """
    if not votes:
        return None
    total = float(sum(votes.get(name, 0) for name in emotions))
    if total <= 0:
        return None
    return {name: votes.get(name, 0) / total for name in emotions}


def check_teacher_labels(attributes: dict) -> List[str]:
    """What is wrong with the teacher labels of an ``attributes`` dict: ``gender_soft`` must be a
    probability in [0, 1], ``age_teacher`` a number of years in :data:`AGE_RANGE` (both optional)."""
    problems = []
    soft = attributes.get("gender_soft")
    if soft is not None and (isinstance(soft, bool) or not isinstance(soft, (int, float)) or not 0.0 <= soft <= 1.0):
        problems.append(f"gender_soft must be a probability in [0, 1], got {soft!r}")
    age = attributes.get("age_teacher")
    if age is not None and (isinstance(age, bool) or not isinstance(age, (int, float))
                            or not AGE_RANGE[0] <= age <= AGE_RANGE[1]):
        problems.append(f"age_teacher must be a number of years in {list(AGE_RANGE)}, got {age!r}")
    return problems
