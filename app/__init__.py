"""customer-account-bff: a backend-for-frontend for Shopify's Customer Account API."""
