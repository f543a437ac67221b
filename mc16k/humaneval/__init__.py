"""Human evaluation: the blind ranking app, the rankings file format and rater agreement."""
