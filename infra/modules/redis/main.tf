# Azure Cache for Redis, the LLM response cache's second level: TLS only, no public access,
# reached through a private endpoint. Its URL goes into Key Vault.
variable "name" {
  type        = string
  description = "Cache name, globally unique."
}

variable "resource_group_name" {
  type        = string
  description = "Resource group to create it in."
}

variable "location" {
  type        = string
  description = "Azure region."
}

variable "sku_name" {
  type        = string
  description = "Standard or Premium."

  validation {
    condition     = contains(["Standard", "Premium"], var.sku_name)
    error_message = "sku_name must be Standard or Premium (Basic has no SLA)."
  }
}

variable "capacity" {
  type        = number
  description = "Cache size within the SKU (C/P family), e.g. 1."
}

variable "endpoints_subnet_id" {
  type        = string
  description = "The subnet for its private endpoint."
}

variable "tags" {
  type        = map(string)
  description = "Tags on every resource."
}

resource "azurerm_redis_cache" "this" {
  name                          = var.name
  resource_group_name           = var.resource_group_name
  location                      = var.location
  sku_name                      = var.sku_name
  family                        = var.sku_name == "Premium" ? "P" : "C"
  capacity                      = var.capacity
  non_ssl_port_enabled          = false
  minimum_tls_version           = "1.2"
  public_network_access_enabled = false
  tags                          = var.tags

  redis_configuration {
    authentication_enabled = true
  }
}

resource "azurerm_private_endpoint" "redis" {
  name                = "pe-${var.name}"
  resource_group_name = var.resource_group_name
  location            = var.location
  subnet_id           = var.endpoints_subnet_id
  tags                = var.tags

  private_service_connection {
    name                           = "redis"
    private_connection_resource_id = azurerm_redis_cache.this.id
    subresource_names              = ["redisCache"]
    is_manual_connection           = false
  }
}

output "id" {
  value = azurerm_redis_cache.this.id
}

output "connection_url" {
  description = "BATON_REDIS_URL (TLS, port 6380)."
  value       = "rediss://:${azurerm_redis_cache.this.primary_access_key}@${azurerm_redis_cache.this.hostname}:${azurerm_redis_cache.this.ssl_port}/0"
  sensitive   = true
}
