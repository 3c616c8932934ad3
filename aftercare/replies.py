"""What a patient's text means: opt-out, opt-in, help, a pain score or a question, and whether it
names a warning sign. Pure: a function of the text alone (``inbox`` adds what the database knows).

Rules, in order:

1. Carrier keywords: the whole message is one word (case, spaces and punctuation around it
   ignored). STOP and its synonyms opt out, START/UNSTOP opt in, HELP/INFO ask for help. YES is
   Twilio's opt-in keyword too, but it is also an ordinary answer, so it is only flagged here.
2. A pain score: one number 0-10 and nothing but filler words ("7", "7/10", "pain 7", "dolor 8").
3. A free-text revocation of consent ("stop texting me", "no me manden más mensajes"): the same as
   STOP. Each rule names the messages themselves, so "the pain won't stop" or "when can I stop the
   ice?" stay questions; "don't stop texting me" is not an opt-out (a negation just before it),
   nor is a question about the schedule ("when will the texts stop?"). "wrong number" is one:
   whoever has the number now never agreed to our texts.
4. Anything else is a question for staff.

Warning signs (from the patient guide) are looked for in revocations and questions. Negation is
handled minimally, and on the side of caution: a sign is ignored only when one of the three words
before it, in the same clause, is a negation ("no fever", "haven't had any fever", "sin fiebre",
"no tengo fiebre"). Commas, full stops, "and"/"y" and "but"/"pero" end a clause, so "no fever,
but the site is red" and "no fever and bleeding" are urgent; "or"/"ni" do not, so "no fever or
bleeding" is not. Not understood: double negatives, sarcasm, questions about a sign ("should I
worry about a fever?" is urgent), past signs ("the bleeding stopped" is urgent). Staff read
every urgent reply, so a false alarm costs a minute; a missed sign could cost far more.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from aftercare.statuses import ReplyKind

# --- 1. carrier keywords -----------------------------------------------------------------------
# Twilio's defaults (Advanced Opt-Out) plus REVOKE and OPTOUT (the FCC's 2025 revocation rule),
# and the Spanish words a patient would use for "stop" on its own.
STOP_WORDS = {
    "stop": "en", "stopall": "en", "unsubscribe": "en", "cancel": "en", "end": "en",
    "quit": "en", "revoke": "en", "optout": "en",
    "alto": "es", "basta": "es", "parar": "es", "cancelar": "es", "detener": "es",
}  # fmt: skip
START_WORDS = {"start": "en", "unstop": "en"}
HELP_WORDS = {"help": "en", "info": "en", "ayuda": "es"}
YES_WORDS = {"yes"}
_KEYWORD_TABLES = (
    (STOP_WORDS, ReplyKind.STOP),
    (START_WORDS, ReplyKind.START),
    (HELP_WORDS, ReplyKind.HELP),
)
# "stop please", "STOP NOW", "alto por favor": still nothing but an opt-out. Only for STOP:
# "help me" may be distress, so it goes to staff as a question.
_POLITE = {
    "please", "pls", "plz", "now", "thanks", "thank", "you", "thx", "it", "ok", "okay",
    "por", "favor", "porfavor", "porfa", "gracias", "ya",
}  # fmt: skip

# --- 2. pain scores ----------------------------------------------------------------------------
_NUMBER_WORDS = {
    word: number
    for words in ("zero one two three four five six seven eight nine ten",
                  "cero uno dos tres cuatro cinco seis siete ocho nueve diez")
    for number, word in enumerate(words.split())
}  # fmt: skip
# "7/10", "7 out of 10", "8 de 10", "8 sobre 10" -> "7"
_OUT_OF_TEN = re.compile(
    rf"\b(\d{{1,2}}|{'|'.join(_NUMBER_WORDS)})\s*(?:/|out\s+of|of|de|sobre)\s*10\b"
)
_PAIN_FILLER = {
    "my", "pain", "is", "level", "score", "its", "it's", "about", "around", "a", "i'd", "say",
    "today", "now", "back", "of",
    "mi", "dolor", "es", "el", "nivel", "de", "un", "una", "como", "hoy", "ahora", "espalda",
}  # fmt: skip
# A score has at most three digits ("7", "10", "007"; the 0-10 range is checked after); a
# longer run of digits is not a score, and int() of one over 4300 digits raises (a 64 KiB
# reply of zeros would answer 500).
_MAX_SCORE_DIGITS = 3
PAIN_URGENT_AT = 7  # a score this high is urgent on its own
PAIN_URGENT_RISE = 3  # ... and so is a rise this big since the enrollment's previous score

# --- 3. free-text revocations ------------------------------------------------------------------
# Matched on normalised text: lower case, accents removed, typographic apostrophes made plain.
_MSGS = r"(?:texts?|txts?|messages?|msgs?|sms(?:es)?|reminders?|notifications?|alerts?)"
_THESE = (
    r"(?:(?:of\s+)?(?:the|these|those|this|your|all|any|all\s+(?:of\s+)?(?:the|these|your))\s+)?"
)
_MENSAJES = r"(?:mensajes?|mensajitos?|textos?|sms|recordatorios?|notificaciones?|alertas?)"
_ESTOS = r"(?:(?:los|estos|esos|sus|todos\s+los|tantos)\s+)?"
REVOCATIONS_EN = [
    rf"\b(?:stop|quit|cease|end)\s+(?:texting|txting|messaging|sending|contacting|{_THESE}{_MSGS})\b",
    rf"\bno\s+more\s+{_THESE}{_MSGS}\b",
    r"\b(?:don'?t|do\s+not)\s+(?:text|txt|message|msg|contact|sms)\s+me\b",
    rf"\b(?:don'?t|do\s+not)\s+(?:send|want)\s+(?:me\s+)?(?:any\s+)?(?:more\s+)?{_THESE}{_MSGS}\b",
    rf"\bi\s+(?:don'?t|do\s+not)\s+want\s+to\s+(?:get|receive)\s+(?:any\s+)?(?:more\s+)?{_THESE}{_MSGS}",
    r"\bunsubscribe\b",
    r"\bopt(?:ed)?[\s-]*(?:me\s+)?out\b",
    rf"\b(?:take|remove)\s+(?:me|my\s+number)\s+(?:off|from)\s+{_THESE}(?:list|texting|{_MSGS})\b",
    r"\bwrong\s+number\b",  # whoever has this number never agreed to our texts
]
REVOCATIONS_ES = [
    r"\bno\s+me\s+(?:manden|mande|mandes|envien|envie|envies|escriban|escriba|contacten|contacte)\b",
    r"\b(?:dejen|deje|dejar|paren|pare|parar)\s+de\s+(?:enviar|mandar|escribir|contactar|textear)",
    rf"\b(?:dejen|deje|dejar)\s+de\s+recibir\s+{_ESTOS}{_MENSAJES}\b",
    rf"\bno\s+quiero\s+(?:recibir\s+)?(?:mas\s+)?{_ESTOS}{_MENSAJES}\b",
    rf"\bbasta\s+de\s+{_ESTOS}{_MENSAJES}\b",
    rf"\bno\s+mas\s+{_ESTOS}{_MENSAJES}\b",
    rf"\b(?:cancelar|cancelen|cancele|detener|detengan)\s+{_ESTOS}{_MENSAJES}\b",
    r"\b(?:darme|dar|denme|deme|me\s+doy)\s+de\s+baja\b",
    r"\bnumero\s+equivocado\b",
]
# "please don't stop texting me", "no dejen de enviarme": the negation is just before the phrase.
_KEEP_GOING = re.compile(
    r"\b(?:don'?t|do\s+not|did\s+not|didn'?t|doesn'?t|never|no|nunca)\s+(?:\w+\s+)?$"
)
# "when will the texts stop?", "¿cuándo dejan de enviar mensajes?": asking about the schedule.
_WHEN = re.compile(r"^\W*(?:when|until\s+when|how\s+long|cuando|hasta\s+cuando)\b")

# --- warning signs -----------------------------------------------------------------------------
# (label for staff, patterns in English and Spanish), from the patient guide's risks and the
# timelines' "call us if" lists, plus chest pain and breathing (cement can travel to the lungs).
WARNING_SIGNS: list[tuple[str, list[str]]] = [
    ("fever", [r"\bfever\w*", r"\bfiebre\b", r"\bcalentura\b"]),
    ("bleeding", [r"\bbleed\w*", r"\bbled\b", r"\bsangr\w*"]),
    ("numbness", [r"\bnumb(?:ness|ed)?\b", r"\bentume\w*", r"\bentumid\w*", r"\badormec\w*"]),
    ("tingling", [r"\btingl\w*", r"\bpins\s+and\s+needles\b", r"\bhormigue\w*"]),
    ("weakness", [r"\bweak\w*", r"\bdebil\w*"]),
    ("worsening back pain", [
        r"\bworse\b", r"\bworsen\w*", r"\b(?:increasing|increased|new|more)\s+(?:back\s+)?pain\b",
        r"\bpain\s+(?:\w+\s+)?increas\w*", r"\bpeor\b", r"\bempeor\w*", r"\bmas\s+dolor\b",
        r"\b(?:dolor\s+nuevo|nuevo\s+dolor)\b", r"\baument\w*\s+(?:el\s+|del\s+)?dolor\b",
        r"\bdolor\s+(?:\w+\s+)?aument\w*", r"\bme\s+duele\s+mas\b",
    ]),
    ("severe pain", [
        r"\b(?:severe|terrible|unbearable|excruciating|worst)\s+(?:\w+\s+)?pain\b",
        r"\bdolor\s+(?:muy\s+)?(?:fuerte|insoportable|terrible)\b", r"\bmucho\s+dolor\b",
    ]),
    ("redness at the site", [r"\bred(?:ness|dish)?\b", r"\benrojec\w*", r"\brojez\w*",
                             r"\broj[oa]s?\b"]),
    ("swelling", [r"\bswell\w*", r"\bswollen\b", r"\bhinch\w*",
                  r"(?<!anti-)(?<!anti )\binflam\w*"]),
    ("drainage or pus", [r"\bdrain\w*", r"\bpus\b", r"\booz\w*", r"\bleak\w*", r"\bsupur\w*"]),
    ("infection", [r"\binfect\w*", r"\binfecc\w*"]),
    ("cannot move or walk", [
        r"\b(?:can'?t|cannot|can\s+not|unable\s+to|not\s+able\s+to)\s+(?:move|walk|stand)\b",
        r"\b(?:can'?t|cannot|can\s+not)\s+feel\s+my\s+(?:legs?|feet|foot|toes)\b",
        r"\blegs?\s+(?:won'?t|don'?t|do\s+not|will\s+not)\s+(?:move|work)\b", r"\bparaly\w*",
        r"\bno\s+puedo\s+(?:mover|caminar|andar|pararme|ponerme\s+de\s+pie)\w*",
        r"\bno\s+(?:puedo\s+sentir|siento)\s+(?:las\s+|mis\s+|los\s+)?(?:piernas?|pies?)\b",
        r"\bparaliz\w*",
    ]),
    ("loss of bladder or bowel control", [
        r"\bbladder\b", r"\bbowels?\s+control\b", r"\bcontrol\s+(?:of\s+)?(?:my\s+)?bowels?\b",
        r"\bincontinen\w*", r"\b(?:wet|peed|pooped|soiled)\s+myself\b", r"\bvejiga\b",
        r"\bcontrol\s+(?:de\s+)?(?:la\s+|el\s+|los\s+)?(?:orina|intestinos?|esfinter\w*)",
        r"\bme\s+(?:orine|hice)\s+encima\b",
    ]),
    ("emergency", [r"\b911\b", r"\bemergenc\w*", r"\bambulanc\w*"]),
    ("chest pain", [r"\bchest\s+pain\b", r"\bdolor\s+(?:en\s+el\s+|de\s+)?pecho\b"]),
    ("trouble breathing", [
        r"\bshort(?:ness)?\s+of\s+breath\b", r"\b(?:can'?t|cannot|hard\s+to)\s+breathe\b",
        r"\b(?:trouble|difficulty)\s+breathing\b", r"\bfalta\s+de\s+aire\b",
        r"\b(?:no\s+puedo|me\s+cuesta)\s+respirar\b", r"\bdificultad\s+para\s+respirar\b",
    ]),
]  # fmt: skip
# Words that cancel a sign when one of the three words before it (in its clause) is one of them.
# Not "can't" or "won't": "it won't stop bleeding" is a sign, not its absence.
_NEGATIONS = {
    "no", "not", "without", "never", "nor", "none", "don't", "dont", "doesn't", "doesnt",
    "didn't", "didnt", "isn't", "isnt", "aren't", "arent", "wasn't", "wasnt", "haven't",
    "havent", "hasn't", "hasnt", "hadn't", "hadnt",
    "sin", "ni", "nunca", "tampoco", "nada", "jamas",
}  # fmt: skip
_CLAUSE_BREAK = re.compile(r"[.,;:!?\n]|\b(?:and|but|however|although|though|y|pero|aunque)\b")

# --- language guess ----------------------------------------------------------------------------
_SPANISH = {
    "el", "la", "los", "las", "de", "del", "que", "y", "en", "un", "una", "mi", "mis", "por",
    "favor", "gracias", "tengo", "estoy", "esta", "es", "muy", "hoy", "dolor", "espalda", "puedo",
    "cuando", "como", "para", "con", "sin", "pero", "hola", "si", "mas", "ya", "quiero", "duele",
    "siento", "mensajes", "manden", "fiebre", "hay", "mucho", "mucha", "sale", "herida", "sangra",
    "sangrado", "debilidad", "hormigueo", "hinchazon", "piernas",
}  # fmt: skip
_ENGLISH = {
    "the", "a", "an", "i", "i'm", "my", "is", "are", "am", "it", "and", "to", "of", "in", "on",
    "have", "has", "can", "when", "how", "what", "please", "thanks", "thank", "you", "pain",
    "back", "hi", "hello", "not", "do", "does", "with", "but", "yes", "more", "stop", "texting",
    "sending", "messages", "texts", "fever", "feel", "today", "bleeding", "numb", "tingling",
    "swelling", "weak", "worse", "legs",
}  # fmt: skip


@dataclass(frozen=True)
class Classification:
    kind: ReplyKind
    language: str | None = None  # "en" / "es" when the words say so, else None
    pain_score: int | None = None
    urgent_reason: str | None = None  # a warning sign's label (pain urgency: see pain_urgency)
    keyword: bool = False  # the whole message is a carrier keyword (Twilio may answer it too)
    yes: bool = False  # the whole message is YES: opt-in only for a number that opted out

    @property
    def urgent(self) -> bool:
        return self.urgent_reason is not None


def classify(body: str) -> Classification:
    text = normalise(body)
    language = guess_language(body, text)
    keyword = _keyword(_words(text))
    if keyword is not None:
        return keyword
    score = pain_score(text)
    if score is not None:
        return Classification(ReplyKind.PAIN, language, pain_score=score)
    sign = warning_sign(text)
    if revokes_consent(text):
        return Classification(ReplyKind.STOP, language, urgent_reason=sign)
    return Classification(ReplyKind.QUESTION, language, urgent_reason=sign)


def normalise(body: str) -> str:
    """Lower case, accents removed ("más" -> "mas"), plain apostrophes, single spaces."""
    text = unicodedata.normalize("NFKD", body.lower().replace("’", "'").replace("‘", "'"))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(text.split())


def _words(text: str) -> list[str]:
    """Words and numbers; an apostrophe only inside a word ("don't", not "'stop'")."""
    return [w.strip("'") for w in re.findall(r"[a-z0-9']+", text) if w.strip("'")]


def _keyword(words: list[str]) -> Classification | None:
    if len(words) == 1:
        (word,) = words
        for table, kind in _KEYWORD_TABLES:
            if word in table:
                return Classification(kind, table[word], keyword=True)
        if word in YES_WORDS:
            return Classification(ReplyKind.QUESTION, "en", keyword=True, yes=True)
    stops = [w for w in words if w in STOP_WORDS]
    if len(words) > 1 and stops and all(w in STOP_WORDS or w in _POLITE for w in words):
        return Classification(ReplyKind.STOP, STOP_WORDS[stops[0]])
    return None


def pain_score(text: str) -> int | None:
    """The 0-10 score if the message is nothing but one ("7", "7/10", "pain: 7", "dolor 8")."""
    words = _words(_OUT_OF_TEN.sub(r"\1", text))
    numbers = [
        w for w in words if (w.isdigit() and len(w) <= _MAX_SCORE_DIGITS) or w in _NUMBER_WORDS
    ]
    if len(numbers) != 1 or any(w not in _PAIN_FILLER for w in words if w not in numbers):
        return None
    (number,) = numbers
    value = int(number) if number.isdigit() else _NUMBER_WORDS[number]
    return value if 0 <= value <= 10 else None


# An answer, not a question: a few words and no question mark ("12", "a lot", "muy mal").
_ANSWER_WORDS = 4


def looks_like_an_answer(body: str) -> bool:
    """Whether a text that is no valid score still reads as an attempt at one (asked again)
    rather than a question (for staff at once)."""
    return "?" not in body and "¿" not in body and 0 < len(body.split()) <= _ANSWER_WORDS


def pain_urgency(score: int, previous: int | None) -> str | None:
    """Why a pain score is urgent (high, or risen fast since the previous one), or None."""
    high = score >= PAIN_URGENT_AT
    rise = previous is not None and score - previous >= PAIN_URGENT_RISE
    if high and rise:
        return f"pain {score}/10, up from {previous}"
    if high:
        return f"pain {score}/10"
    if rise:
        return f"pain up from {previous} to {score}"
    return None


def revokes_consent(text: str) -> bool:
    """Whether normalised free text plainly asks us to stop texting."""
    if _WHEN.search(text):
        return False
    for pattern in _REVOCATIONS:
        for match in pattern.finditer(text):
            if not _KEEP_GOING.search(_before(text, match.start())):
                return True
    return False


def warning_sign(text: str) -> str | None:
    """The label of the first warning sign named in normalised text and not negated."""
    found: list[tuple[int, str]] = []
    for label, patterns in _SIGNS:
        for pattern in patterns:
            # The first match that is not negated is this pattern's earliest sign.
            first = next((m for m in pattern.finditer(text) if not _negated(text, m)), None)
            if first is not None:
                found.append((first.start(), label))
    return min(found)[1] if found else None


def _before(text: str, end: int) -> str:
    """The words just before ``end``: enough for a negation three words back, and bounded, so
    a long reply full of matches ("no fever no fever ...") is read in linear time, not
    quadratic (a 64 KiB body took seconds per webhook). Starts at a word boundary."""
    start = max(0, end - _LOOKBACK)
    window = text[start:end]
    if start > 0:
        space = window.find(" ")
        window = window[space + 1 :] if space >= 0 else ""
    return window


# Characters looked back from a match for a negation or a clause break; three words of any
# real language fit many times over.
_LOOKBACK = 120


def _negated(text: str, match: re.Match[str]) -> bool:
    before = _before(text, match.start())
    breaks = list(_CLAUSE_BREAK.finditer(before))
    clause = before[breaks[-1].end() :] if breaks else before
    return any(word in _NEGATIONS for word in re.findall(r"[a-z']+", clause)[-3:])


def guess_language(body: str, text: str) -> str | None:
    """ "es" or "en" by counting common words (and Spanish marks), or None when unsure."""
    words = _words(text)
    spanish = sum(w in _SPANISH for w in words) + 2 * bool(re.search(r"[ñ¿¡áéíóú]", body.lower()))
    english = sum(w in _ENGLISH for w in words)
    if spanish == english:
        return None
    return "es" if spanish > english else "en"


_REVOCATIONS = [re.compile(p) for p in REVOCATIONS_EN + REVOCATIONS_ES]
_SIGNS = [(label, [re.compile(p) for p in patterns]) for label, patterns in WARNING_SIGNS]
