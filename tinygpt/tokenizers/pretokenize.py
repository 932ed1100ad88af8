"""The regex pre-split of GPT-2 and GPT-4 (cl100k), rewritten for the standard-library `re`.

BPE never merges across the chunks these patterns cut ("hello world!" -> "hello", " world",
"!"), so tokens never glue words to punctuation. The originals need the `regex` module for
\\p{L} and \\p{N}; tinygpt does NOT depend on it, and the approximation is listed below.
GPT2Tokenizer (huggingface.py) must equal Hugging Face, so it uses `regex` when installed
(compile_gpt2_pattern) and this approximation only as a fallback.
"""

import re

# Stand-ins for the `regex` classes, built from what `re` knows (\w = letters, numbers and "_"):
# - \p{N} -> \d, decimal digits [Nd] only. The ~1100 other numbers [No, Nl] ('²', '½', 'Ⅻ')
#   land in the letter class instead, which is "word characters but digits and '_'".
# - \p{L} -> [^\W\d_]: the letters plus those numbers. Combining marks [Mn] are letters in
#   neither, so "é" written as e + U+0301 splits the same way in both.
# - \s of `re` also matches the ASCII separators \x1c-\x1f; that of `regex` does not.
# - GPT-4's possessive ?+ and ++ become ? and +: the classes they guard cannot match what
#   follows them, so backtracking never changes the result (and Python 3.10 can run it).
# On ASCII, CJK and ordinary letters the splits are identical (a test checks against `regex`),
# and whatever the text, every character lands in exactly one chunk: round trips rely on it.
_LETTER = r"[^\W\d_]"                              # \p{L}
_NUMBER = r"\d"                                    # \p{N}
_NOT_SPACE_LETTER_NUMBER = r"(?:[^\s\w]|_)"        # [^\s\p{L}\p{N}]
_NOT_NEWLINE_LETTER_NUMBER = r"(?:[^\r\n\w]|_)"    # [^\r\n\p{L}\p{N}]

# GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
GPT2_SPLIT_PATTERN = (
    r"'s|'t|'re|'ve|'m|'ll|'d"
    rf"| ?{_LETTER}+| ?{_NUMBER}+| ?{_NOT_SPACE_LETTER_NUMBER}+"
    r"|\s+(?!\S)|\s+"
)

# GPT-4 (cl100k): '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}
#                 | ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+
# Numbers come in pieces of at most 3 digits; a leading space or symbol sticks to the word after it.
GPT4_SPLIT_PATTERN = (
    r"'(?i:[sdmt]|ll|ve|re)"
    rf"|{_NOT_NEWLINE_LETTER_NUMBER}?{_LETTER}+"
    rf"|{_NUMBER}{{1,3}}"
    rf"| ?{_NOT_SPACE_LETTER_NUMBER}+[\r\n]*"
    r"|\s*[\r\n]|\s+(?!\S)|\s+"
)


def compile_split_pattern(pattern):
    """Compile a pre-split regex, turning a bad one into a ValueError that shows it."""
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a regex str, got {type(pattern).__name__}")
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ValueError(f"pattern {pattern!r} is not a valid regex: {e}") from e


def split_text(text, pattern=GPT4_SPLIT_PATTERN):
    """str -> list[str] chunks whose concatenation is `text`; BPE merges stay inside a chunk."""
    return compile_split_pattern(pattern).findall(text)


# GPT-2's pattern exactly as OpenAI and Hugging Face `tokenizers` write it, for the `regex`
# module (Rust's regex and `regex` agree: \s is Unicode White_Space, \p{N} is every number).
GPT2_REGEX_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def compile_gpt2_pattern(use_regex=None):
    """GPT-2's pre-split regex: the exact one via `regex` when it is installed (use_regex=None)
    or asked for (True), else the stdlib `re` approximation above, which differs from Hugging
    Face only on the numbers that are not decimal digits ('²', '½', 'Ⅻ') and on \\x1c-\\x1f."""
    if use_regex is None:
        try:
            import regex  # noqa: F401
            use_regex = True
        except ImportError:
            use_regex = False
    if use_regex:
        import regex
        return regex.compile(GPT2_REGEX_PATTERN)
    return re.compile(GPT2_SPLIT_PATTERN)
