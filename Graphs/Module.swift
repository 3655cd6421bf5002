// graphs
