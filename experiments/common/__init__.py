"""Building blocks shared by the experiment scripts: network, data, training, metrics, reporting."""
