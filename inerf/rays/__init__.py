"""inerf.rays"""
