# The image registry: Premium (private endpoint, geo-replication, retention), the admin user
# off: AKS pulls with its kubelet identity through an AcrPull role assignment (module identity).
variable "name" {
  type        = string
  description = "Registry name: 5 to 50 letters and digits, globally unique."

  validation {
    condition     = can(regex("^[a-zA-Z0-9]{5,50}$", var.name))
    error_message = "An ACR name is 5 to 50 letters and digits."
  }
}

variable "resource_group_name" {
  type        = string
  description = "Resource group to create it in."
}

variable "location" {
  type        = string
  description = "Azure region."
}

variable "replica_location" {
  type        = string
  description = "A second region the registry is replicated to."
}

variable "endpoints_subnet_id" {
  type        = string
  description = "The subnet for its private endpoint."
}

variable "tags" {
  type        = map(string)
  description = "Tags on every resource."
}

resource "azurerm_container_registry" "this" {
  name                          = var.name
  resource_group_name           = var.resource_group_name
  location                      = var.location
  sku                           = "Premium"
  admin_enabled                 = false
  public_network_access_enabled = false
  zone_redundancy_enabled       = true
  data_endpoint_enabled         = true
  quarantine_policy_enabled     = true
  trust_policy_enabled          = true
  retention_policy_in_days      = 30
  tags                          = var.tags

  georeplications {
    location                = var.replica_location
    zone_redundancy_enabled = true
    tags                    = var.tags
  }
}

resource "azurerm_private_endpoint" "registry" {
  name                = "pe-${var.name}"
  resource_group_name = var.resource_group_name
  location            = var.location
  subnet_id           = var.endpoints_subnet_id
  tags                = var.tags

  private_service_connection {
    name                           = "registry"
    private_connection_resource_id = azurerm_container_registry.this.id
    subresource_names              = ["registry"]
    is_manual_connection           = false
  }
}

output "id" {
  value = azurerm_container_registry.this.id
}

output "login_server" {
  value = azurerm_container_registry.this.login_server
}
