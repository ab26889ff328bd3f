"""M&V engine: data sufficiency, baseline models, ASHRAE Guideline 14 statistics, savings, report."""
