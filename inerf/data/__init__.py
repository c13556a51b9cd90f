"""inerf.data"""
