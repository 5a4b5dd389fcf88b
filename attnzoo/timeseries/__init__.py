"""Long-horizon multivariate forecasting: the series and their splits, the models, the one recipe."""
