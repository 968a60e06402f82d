"""Live transcription: Whisper on a stream that is still arriving, in two tiers.

The newest stretch (the tail) is transcribed again every `step_s` of new audio, greedily, and sent as the
partial; a pass whose new audio holds no speech changes nothing and is skipped. At each pause (Silero VAD, as
Whisper's own filter) the tail's guess up to it is kept as it is and the tail starts after it, so a pass decodes
seconds of audio, not the whole call. Every `final_s` or so, at a pause, the kept stretch is decoded once more with
the beam search, as a whole-file transcription decodes it, and sent as final: a sentence decoded alone loses words
that its neighbours give (on the team-meeting recording, sentence by sentence differed from the whole-file
transcript by 13% of words, "leaflets" became "lead list"; in 20 s stretches by 4-9%, much of it where the
whole-file transcript is the one that is wrong). No text is given as a prompt: with one, tiny.en stopped marking
segment times and made up a sentence at a stretch's end.
Measured on this 2-core machine with the packaged tiny.en (int8, cProfile): a greedy pass costs 0.45 s, 0.28 s of it
the encoder (which always reads 30 s, padded), so a stream keeps about 1.2 cores busy at `step_s` 0.5 (the live
bench: 211 CPU s for 176 s of calls).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ingestflow.audio.transcript import Segment, Transcript, Word, join_words

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

RATE = 16_000  # what Whisper reads: every stream is decoded or resampled to 16 kHz mono
MIN_PAUSE_S = 0.3  # a shorter silence is a breath inside a sentence, not a place to cut
SPEECH_PAD_S = 0.1
UNHEARD = 0.3  # a segment with less of its time over speech than this was made up
SILENT_KEEP_S = 1.0  # audio kept when the tail holds no speech at all (a word may be starting at its end)


@dataclass
class LiveUpdate:
    """What one pass settled (final, in order, seconds from the stream's start) and what is guessed after it."""

    final: list[Segment] = field(default_factory=list)
    partial: list[Segment] = field(default_factory=list)


class LiveTranscriber:
    """Feed it samples as they arrive, call `step()` when `due()` and `settle()` when `settle_due`; `step(last=True)`
    settles everything left.

    Seconds: `_start_s` is where the unsettled audio (`_audio`) begins, `_kept_s` where the tail begins; between
    them lie the kept guesses (`_kept`), decoded again when they are settled."""

    def __init__(self, model: WhisperModel, label: str, *, language: str | None = None, step_s: float = 0.5,
                 tail_s: float = 4.0, max_tail_s: float = 12.0, settle_s: float = 0.6, final_s: float = 20.0,
                 max_final_s: float = 28.0, final_beam: int = 5) -> None:
        from ingestflow.audio.whisper import checked_language

        self._model, self._label = model, label
        language = checked_language(model, label, language)  # PermanentError: one the model cannot transcribe
        self.language = language or (None if model.model.is_multilingual else "en")
        self.language_probability = 1.0 if self.language else 0.0
        self.step_s, self.settle_s, self.final_beam = step_s, settle_s, final_beam
        self.tail_s, self.max_tail_s, self.final_s, self.max_final_s = tail_s, max_tail_s, final_s, max_final_s
        self._audio = np.zeros(0, dtype=np.float32)
        self._start_s = self._kept_s = 0.0
        self._kept: list[Segment] = []
        self._guess: list[Segment] = []  # the tail's, from the last pass
        self._heard_to = 0.0  # where the speech the last greedy pass heard ended
        self.settle_due = False
        self._stepped_at = 0  # samples received when the last pass ran
        self._received = 0
        self.finals: list[Segment] = []

    @property
    def received_s(self) -> float:
        return self._received / RATE

    def feed(self, samples: np.ndarray) -> None:
        """Mono float32 samples at 16 kHz, in order."""
        if samples.size:
            self._audio = np.concatenate([self._audio, samples.astype(np.float32, copy=False)])
            self._received += int(samples.size)

    def due(self) -> bool:
        return self._received - self._stepped_at >= self.step_s * RATE

    def step(self, *, last: bool = False) -> LiveUpdate:
        """One greedy pass over the tail: the partial. Sets `settle_due` when the kept stretch should be settled
        (`settle()`, a call of its own, so that the partial is out before the slower beam search runs)."""
        self._stepped_at = self._received
        end = self._start_s + self._audio.size / RATE
        if last:
            update = LiveUpdate(final=self._settle(end))
            self._kept, self._kept_s, self._guess, self.settle_due = [], self._start_s, [], False
            return update
        speech = self._speech(self._kept_s, end)
        keep = self._pause(speech, self._kept_s, end, self.tail_s, self.max_tail_s)
        if not speech:
            guess = []
        elif speech[-1][1] > self._heard_to:  # new speech since the last pass; silence changes no guess
            guess = self._transcribe(self._kept_s, end, beam_size=1)
            self._heard_to = speech[-1][1]
        else:
            guess = self._guess
        if keep is not None:  # the guess up to the pause is kept as it is; the tail starts after it
            self._kept += [g for g in guess if g["end"] <= keep + SPEECH_PAD_S]
            guess = [g for g in guess if g["end"] > keep + SPEECH_PAD_S]
            self._kept_s = keep
            speech = [(a, b) for a, b in speech if b > keep]
        trailing = end - (speech[-1][1] if speech else self._kept_s)
        self.settle_due = self._kept_s > self._start_s and (
            self._kept_s - self._start_s >= self.final_s or end - self._start_s > self.max_final_s
            or (bool(self._kept) and trailing >= 2 * self.settle_s))
        if not self.settle_due and not self._kept and not speech and self._kept_s > self._start_s:
            self._drop(self._kept_s)  # silence: nothing to settle
        self._guess = guess
        return LiveUpdate(partial=self._kept + guess)

    def settle(self) -> LiveUpdate:
        """The kept stretch decoded again with the beam search: final; the tail's guess is the partial after it."""
        final = self._settle(self._kept_s)
        self._kept, self.settle_due = [], False
        return LiveUpdate(final=final, partial=list(self._guess))

    def transcript(self) -> Transcript:
        """What has settled so far, as a transcript of the stream (the document's first, until the pipeline's)."""
        return Transcript(language=self.language or "en", language_probability=round(self.language_probability, 4),
                          duration_s=round(self.received_s, 3), segments=list(self.finals),
                          model=f"{self._label} live")

    def _settle(self, until: float) -> list[Segment]:
        """Decode the unsettled audio up to `until` with the beam search and the text before it as context."""
        final: list[Segment] = []
        if until > self._start_s and self._speech(self._start_s, until):
            for seg in self._transcribe(self._start_s, until, beam_size=self.final_beam):
                seg["id"] = len(self.finals)
                self.finals.append(seg)
                final.append(seg)
        self._drop(until)
        return final

    def _speech(self, start: float, end: float) -> list[tuple[float, float]]:
        """Stretches of speech between two seconds of the stream (Silero VAD, as Whisper's own filter)."""
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        audio = self._samples(start, end)
        if audio.size < 0.2 * RATE:
            return []
        found = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=int(MIN_PAUSE_S * 1000),
                                                        speech_pad_ms=int(SPEECH_PAD_S * 1000)))
        return [(start + c["start"] / RATE, start + c["end"] / RATE) for c in found]

    def _pause(self, speech: list[tuple[float, float]], start: float, end: float, ripe_s: float,
               longest_s: float) -> float | None:
        """A point in a pause to cut at: the last one `ripe_s` or more after `start` (or the end, once the speech
        has stopped `settle_s` ago), else the longest pause once the stretch outgrows `longest_s`, else None."""
        if not speech:
            keep_from = end - SILENT_KEEP_S
            return keep_from if keep_from > start + self.settle_s else None
        pauses = [(a, b) for (_, a), (b, _) in zip(speech, speech[1:], strict=False)]
        if end - speech[-1][1] >= self.settle_s:
            pauses.append((speech[-1][1], end))
        ripe = [(a + b) / 2 for a, b in pauses if (a + b) / 2 - start >= ripe_s]
        if ripe:
            return ripe[-1]
        if end - start > longest_s:
            if pauses:
                a, b = max(pauses, key=lambda p: p[1] - p[0])
                return (a + b) / 2
            return end - SILENT_KEEP_S  # speech with no pause at all: it has to be cut somewhere
        return None

    def _samples(self, start: float, end: float) -> np.ndarray:
        first = max(0, int(round((start - self._start_s) * RATE)))
        return self._audio[first: max(first, int(round((end - self._start_s) * RATE)))]

    def _drop(self, until: float) -> None:
        drop = int(round((until - self._start_s) * RATE))
        if drop > 0:
            self._audio = self._audio[drop:]
            self._start_s += drop / RATE
        self._kept_s = max(self._kept_s, self._start_s)

    def _transcribe(self, start: float, end: float, *, beam_size: int) -> list[Segment]:
        # A multilingual model detects the language on the first pass that hears speech, and keeps it.
        # Word times only for what is settled: a guess is shown, never cited (it saves an alignment pass each time).
        final = beam_size > 1
        segments, info = self._model.transcribe(
            self._samples(start, end), language=self.language, beam_size=beam_size, vad_filter=True,
            word_timestamps=final, condition_on_previous_text=False)
        speech = self._speech(start, end)
        out: list[Segment] = []
        for seg in segments:
            a, b = float(seg.start) + start, float(seg.end) + start
            heard = sum(max(0.0, min(b, y) - max(a, x)) for x, y in speech)
            if heard < UNHEARD * max(b - a, 0.1):
                continue  # words over silence: Whisper's "Thank you." at the end of a stretch, not speech
            words = [Word(start=round(float(w.start) + start, 3), end=round(float(w.end) + start, 3),
                          word=str(w.word), probability=round(float(w.probability), 4)) for w in seg.words or []]
            text = join_words(words) if words else str(seg.text).strip()
            if text:
                out.append(Segment(id=-1, start=round(float(seg.start) + start, 3),
                                   end=round(float(seg.end) + start, 3), text=text, words=words))
        if out and self.language is None and info.language:
            self.language, self.language_probability = str(info.language), float(info.language_probability or 0)
        return out
