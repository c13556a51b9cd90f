"""inerf.render"""
