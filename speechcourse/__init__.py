"""Plumbing shared by the book and the labs: corpus loading, the audio front end,
plots and gradient checks. Each page imports only what it needs from here, so the
page itself shows only the idea it teaches."""
