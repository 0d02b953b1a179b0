"""The merge stage and what surrounds it: checks, reports, pull requests, the conflict radar."""
