"""Mass scans for bumphunt: grid, vetoes, scan driver, look-elsewhere effect, results and plots."""
