"""`python -m tinygpt.backend`: print which implementation each kernel runs on, and why."""

from tinygpt.backend import main

main()
