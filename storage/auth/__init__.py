"""API tokens and roles, hashed in the catalog (``st.tokens``): ``service.TokenService``."""
