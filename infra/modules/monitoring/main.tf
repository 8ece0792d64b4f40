# Log Analytics: AKS's container insights and the diagnostic logs of the managed services.
variable "name" {
  type        = string
  description = "Log Analytics workspace name."
}

variable "resource_group_name" {
  type        = string
  description = "Resource group to create it in."
}

variable "location" {
  type        = string
  description = "Azure region."
}

variable "retention_days" {
  type        = number
  description = "How long logs are kept (30 to 730 days)."

  validation {
    condition     = var.retention_days >= 30 && var.retention_days <= 730
    error_message = "retention_days must be between 30 and 730."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags on every resource."
}

resource "azurerm_log_analytics_workspace" "this" {
  name                = var.name
  resource_group_name = var.resource_group_name
  location            = var.location
  sku                 = "PerGB2018"
  retention_in_days   = var.retention_days
  tags                = var.tags
}

output "workspace_id" {
  value = azurerm_log_analytics_workspace.this.id
}
