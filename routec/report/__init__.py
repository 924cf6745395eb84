"""Stage 6: tables, drawings and plots of networks and runs."""
