"""Per-face attribute vocabularies shared by converters, datasets, models and writers.

A face's ``attributes`` dict holds any of ``age`` (float years in [0, 120]), ``gender`` (one of
:data:`GENDERS`) and ``emotion`` (one of :data:`EMOTIONS`); a missing key means unknown.
The ``normalize_*`` helpers map the spellings found in public datasets and annotation tools onto
these names and return ``None`` for anything they do not recognise (the caller reports it).
"""

from __future__ import annotations

from typing import Optional

EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
GENDERS = ("female", "male")
AGE_RANGE = (0.0, 120.0)  # years, inclusive

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
