"""inerf.viz"""
