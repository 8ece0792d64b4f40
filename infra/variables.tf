variable "subscription_id" {
  type        = string
  description = "The Azure subscription to deploy into."
}

variable "environment" {
  type        = string
  description = "dev or prod: part of every name."

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "location" {
  type        = string
  description = "Azure region, e.g. westeurope."
}

variable "replica_location" {
  type        = string
  description = "The registry's second region, e.g. northeurope."
}

variable "name_suffix" {
  type        = string
  description = "A short unique suffix for globally unique names (registry, vault, servers)."

  validation {
    condition     = can(regex("^[a-z0-9]{3,8}$", var.name_suffix))
    error_message = "name_suffix is 3 to 8 lower-case letters and digits."
  }
}

variable "address_space" {
  type        = string
  description = "The virtual network's CIDR, e.g. 10.40.0.0/16."
}

variable "kubernetes_version" {
  type        = string
  description = "AKS Kubernetes minor version."
}

variable "network_plugin_mode" {
  type        = string
  description = "\"overlay\" for Azure CNI Overlay, \"\" for classic Azure CNI."
}

variable "system_vm_size" {
  type        = string
  description = "VM size of AKS's system pool."
}

variable "worker_vm_size" {
  type        = string
  description = "VM size of the pool Baton runs on."
}

variable "worker_min_count" {
  type        = number
  description = "Fewest worker nodes."
}

variable "worker_max_count" {
  type        = number
  description = "Most worker nodes."
}

variable "admin_group_object_ids" {
  type        = list(string)
  description = "Entra ID groups that administer the cluster."
}

variable "api_server_authorized_ip_ranges" {
  type        = list(string)
  description = "CIDRs that may reach the Kubernetes API."
}

variable "postgresql_sku_name" {
  type        = string
  description = "PostgreSQL compute, e.g. GP_Standard_D4ds_v5."
}

variable "postgresql_storage_mb" {
  type        = number
  description = "PostgreSQL storage in MB."
}

variable "postgresql_high_availability" {
  type        = bool
  description = "A zone-redundant standby and geo-redundant backups."
}

variable "redis_sku_name" {
  type        = string
  description = "Standard or Premium."
}

variable "redis_capacity" {
  type        = number
  description = "Redis size within the SKU."
}

variable "log_retention_days" {
  type        = number
  description = "Log Analytics retention."
}

variable "kubernetes_namespace" {
  type        = string
  description = "The namespace Baton's chart goes into."
}

variable "helm_release" {
  type        = string
  description = "The chart's release name (its service account is <release>-baton)."
}

variable "secret_expiry" {
  type        = string
  description = "When the URLs stored in Key Vault expire (RFC 3339)."
}

variable "tags" {
  type        = map(string)
  description = "Tags on every resource."
}
