"""Hypothesis fits and limits for bumphunt: extended unbinned likelihood fits,
profile-likelihood test statistics, asymptotic and toy CLs upper limits."""
